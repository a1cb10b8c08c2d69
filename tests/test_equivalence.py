"""A distributed training step equals the one-device step on the same global batch.

Each check runs tests/scripts/equivalence.py in the shared replica process of tests/conftest.py
(logical CPU devices stand in for replicas and must be configured before TensorFlow
initialises): one `fit` step of a model with synchronised BatchNorm under MirroredStrategy over
2 and 4 logical CPUs, against the default strategy, from the same weights, on the same global
batch, with a deterministic augmenter (none for the triplet Siamese network); NNCLR over two
steps, so that its support set is read after being written. Controls show the comparison can
fail: per-replica BatchNorm, and SimCLR, NNCLR or triplet mining without the cross-replica
gather, give other losses and weights. MAE (no BatchNorm) over two steps on 2 and 4 replicas,
and one batch split 6, 6, 4 over 3: its masks are drawn per global image, its loss is the
global mean; masks seeded per replica differ. Run with `pytest -s` to see the measured
differences.
"""

import json
import os

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "equivalence.py")
LOSS_TOLERANCE = 1e-5
WEIGHTS_TOLERANCE = 1e-5  # ||W - W_ref|| / ||W_ref|| over all weights after the step
UPDATES_TOLERANCE = 1e-4  # the same on the step's update (learning rate x gradients)
GLOBAL_BATCH = 16


def equivalence_results(result) -> dict:
    """The JSON results of tests/scripts/equivalence.py, run by the shared replica process."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("EQUIVALENCE ")]
    assert len(lines) == 1, result.stdout[-3000:]
    results = json.loads(lines[0].removeprefix("EQUIVALENCE "))
    print(json.dumps(results, indent=2))  # the measured deltas, shown with `pytest -s`
    return results


def check_replicated_matches(results: dict, negatives: int | None) -> None:
    # The reference step must really move the weights, or equal weights would prove nothing.
    assert results["relative_update"] > 1e-3
    for count in (2, 4):
        replicated = results[f"replicas_{count}"]
        assert replicated["loss_difference"] < LOSS_TOLERANCE, replicated
        assert replicated["weights_relative_difference"] < WEIGHTS_TOLERANCE, replicated
        assert replicated["updates_relative_difference"] < UPDATES_TOLERANCE, replicated
        # Every variable within 1e-4 relative (1e-6 absolute): no bad variable hides in the norm.
        assert replicated["variables_not_close"] == [], replicated
        report = replicated["report"]
        assert report["replicas"] == count
        assert report["per_replica_batch_size"] == GLOBAL_BATCH // count
        assert report["negatives_per_anchor"] == negatives
        assert report["local_batch_norm"] == []
        assert report["warnings"] == []
    control = results["without_sync_batch_norm"]
    assert control["weights_relative_difference"] > 10 * UPDATES_TOLERANCE, control
    assert any("BatchNorm" in warning for warning in control["warnings"]), control


@pytest.mark.slow
@pytest.mark.replica_job(SCRIPT, "simclr", "2", "4")
def test_simclr_step_on_2_and_4_replicas_equals_one_device(replica_job):
    results = equivalence_results(replica_job)
    check_replicated_matches(results, negatives=2 * GLOBAL_BATCH - 2)
    # Without the all_gather each replica sees only its own negatives: another loss.
    control = results["without_all_gather"]
    assert control["loss_difference"] > 1e-2, control
    assert control["weights_relative_difference"] > 10 * UPDATES_TOLERANCE, control
    assert results["without_sync_batch_norm"]["loss_difference"] > 1e-3


@pytest.mark.slow
@pytest.mark.replica_job(SCRIPT, "simsiam", "2", "4")
def test_simsiam_step_on_2_and_4_replicas_equals_one_device(replica_job):
    results = equivalence_results(replica_job)
    check_replicated_matches(results, negatives=None)


@pytest.mark.slow
@pytest.mark.replica_job(SCRIPT, "siamese", "2", "4")
def test_triplet_siamese_step_on_2_and_4_replicas_equals_one_device(replica_job):
    results = equivalence_results(replica_job)
    # SiameseNetwork has no negatives_per_anchor: the report shows no count.
    check_replicated_matches(results, negatives=None)
    # Without the gather each replica mines triplets within its own share of the batch.
    control = results["without_all_gather"]
    assert control["loss_difference"] > 1e-4, control
    assert control["weights_relative_difference"] > 10 * UPDATES_TOLERANCE, control


@pytest.mark.slow
@pytest.mark.replica_job(SCRIPT, "nnclr", "2", "4")
def test_nnclr_two_steps_and_support_set_on_2_and_4_replicas_equal_one_device(replica_job):
    # Two steps: the second reads the neighbours the first enqueued (16 rows into 24 slots,
    # then 16 more that wrap around); the support set is among the variables compared.
    results = equivalence_results(replica_job)
    check_replicated_matches(results, negatives=GLOBAL_BATCH - 1)
    # Without the gathers each replica contrasts within its share and enqueues only its own
    # projections (replica 0's, kept by `only_first_replica`): another loss and support set.
    control = results["without_all_gather"]
    assert control["loss_difference"] > 1e-2, control
    assert control["weights_relative_difference"] > 10 * UPDATES_TOLERANCE, control
    assert "support_set/embeddings" in control["variables_not_close"], control
    assert "support_set/pointer" in control["variables_not_close"], control


@pytest.mark.slow
@pytest.mark.replica_job(SCRIPT, "mae", "2", "4")
def test_mae_masks_and_loss_on_2_4_and_uneven_3_replicas_equal_one_device(replica_job):
    # Two fit steps (other masks in each) on 2 and 4 replicas; one batch of 16 split 6, 6, 4
    # over 3 (strategy.run): the row offsets and the global mean over the masked patches hold
    # for uneven shares too.
    results = equivalence_results(replica_job)
    assert results["relative_update"] > 1e-3
    for count in (2, 4):
        replicated = results[f"replicas_{count}"]
        assert replicated["loss_difference"] < LOSS_TOLERANCE, replicated
        assert replicated["weights_relative_difference"] < WEIGHTS_TOLERANCE, replicated
        assert replicated["updates_relative_difference"] < UPDATES_TOLERANCE, replicated
        assert replicated["variables_not_close"] == [], replicated
        assert replicated["report"]["local_batch_norm"] == []
    uneven = results["uneven_3_replicas"]
    assert uneven["replica_batch_sizes"] == [6, 6, 4] and uneven["masks_equal"], uneven
    assert uneven["traced_replica_batch_sizes"] == [6, 6, 4], uneven  # each its own static size
    assert uneven["loss_difference"] < LOSS_TOLERANCE, uneven
    assert uneven["gradients_relative_difference"] < UPDATES_TOLERANCE, uneven
    # Masks seeded per replica, or drawn per replica's share (no gathers): other masks.
    for name in ("masks_per_replica", "without_all_gather"):
        control = results[name]
        assert control["loss_difference"] > 1e-3, (name, control)
        assert control["weights_relative_difference"] > 10 * UPDATES_TOLERANCE, (name, control)
