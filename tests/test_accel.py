"""``resolve_accel``: the one place mixed precision / XLA / overlap are decided."""

from __future__ import annotations

from featx.runtime.accel import Accel, resolve_accel


def test_defaults_follow_the_devices():
    assert resolve_accel(gpus=0) == Accel(mixed_precision=False, xla=False, overlap=False, gpus=0)
    assert resolve_accel(gpus=2) == Accel(mixed_precision=True, xla=True, overlap=True, gpus=2)
    assert resolve_accel(gpus=2).device == "GPU x 2" and resolve_accel(gpus=0).device == "CPU"


def test_explicit_choices_win_and_overlap_stays_with_the_device():
    a = resolve_accel(mixed_precision=True, xla=False, gpus=0)
    assert (a.mixed_precision, a.xla, a.overlap) == (True, False, False)
    assert a.describe() == "mixed precision"
    b = resolve_accel(mixed_precision=False, xla=False, gpus=1)
    assert (b.mixed_precision, b.xla, b.overlap, b.describe()) == (False, False, True, "float32")


def test_this_machine_is_detected():
    import tensorflow as tf

    n = len(tf.config.list_physical_devices("GPU"))
    assert resolve_accel().gpus == n and resolve_accel().mixed_precision == (n > 0)


def test_jax_always_jit_compiles_the_others_only_on_a_gpu():
    assert resolve_accel(gpus=0, backend="jax").xla is True
    assert resolve_accel(gpus=0, backend="torch").xla is False
    assert resolve_accel(gpus=1, backend="torch").xla is True
    assert resolve_accel(gpus=0, xla=False, backend="jax").xla is False
    assert resolve_accel(gpus=0, backend="jax").backend == "jax"


def test_policy_names_the_half_type():
    assert Accel(True, False, True, 1, half="bfloat16").policy == "mixed_bfloat16"
    assert Accel(True, True, True, 1).policy == "mixed_float16"
    assert Accel(False, True, True, 1, half="bfloat16").policy == "float32"
    assert Accel(True, True, True, 1, half="bfloat16").describe() == "mixed precision (bfloat16), XLA"
    assert resolve_accel(gpus=2).half == "float16"  # a count passed in: no device to ask, float16
