"""The metric losses of SiameseNetwork train on 2 replicas exactly as on one device.

tests/scripts/equivalence.py fits two P x K steps of a SiameseNetwork under each loss, on the
default strategy and under MirroredStrategy over 2 logical CPUs, from the same weights, on
the same global batches; the losses and weights must agree. Pair losses see the global batch
(embeddings and labels gathered), the cross-batch memory holds the global batches of both
steps, ProxyAnchor aggregates each proxy over the global batch, and the class proxies are one
variable for all replicas. The control without the gather must differ for the losses that
need it, so the comparison can fail.
"""

import pytest
from test_equivalence import SCRIPT, equivalence_results

LOSS_RELATIVE_TOLERANCE = 1e-5  # ArcFace's scale 64 makes losses of ~20: float32 sums differ
WEIGHTS_TOLERANCE = 1e-5
UPDATES_TOLERANCE = 1e-4
GATHERED = ("xbm", "proxy_anchor")  # the control must differ


# Pairs of the global batch plus a memory (multi-similarity in XBM), and proxies aggregated
# over the global batch. ArcFace's per-example mean and the other losses are checked on
# uneven replica splits in tests/test_pair_losses.py and tests/test_proxy_losses.py.
LOSSES = ("xbm", "proxy_anchor")


@pytest.mark.slow
@pytest.mark.parametrize(
    "loss",
    [
        pytest.param(name, marks=pytest.mark.replica_job(SCRIPT, f"siamese-{name}", "2"))
        for name in LOSSES
    ],
)
def test_metric_loss_on_2_replicas_equals_one_device(loss, replica_job):
    results = equivalence_results(replica_job)
    assert results["relative_update"] > 1e-3  # the reference steps really move the weights
    replicated = results["replicas_2"]
    loss_scale = max(abs(results["reference_loss"]), 1.0)
    assert replicated["loss_difference"] / loss_scale < LOSS_RELATIVE_TOLERANCE, replicated
    assert replicated["weights_relative_difference"] < WEIGHTS_TOLERANCE, replicated
    assert replicated["updates_relative_difference"] < UPDATES_TOLERANCE, replicated
    assert not replicated["variables_not_close"], replicated
    if loss in GATHERED:
        control = results["without_all_gather"]
        assert control["loss_difference"] > 1e-4 * loss_scale, control
