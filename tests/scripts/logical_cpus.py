"""Logical CPU devices standing in for replicas, for the scripts run by the tests."""

import tensorflow as tf


def use_logical_cpus(count: int) -> list[str]:
    """Splits the CPU into `count` logical devices; returns the names of the first `count`.

    Must run before TensorFlow initialises, unless the process already has at least `count`
    logical CPUs (tests/scripts/worker.py makes 4 and runs several scripts in turn).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu) or []
    if len(configured) < count:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    return [device.name for device in tf.config.list_logical_devices("CPU")[:count]]
