"""Properties of the lab's salt-and-pepper noise."""

import numpy as np
import pytest

from mnistlab.data import salt_and_pepper
from mnistlab.cli import LabError


def grey_images(n=200):
    # 0.5 everywhere: any changed pixel is visible, since noise only writes 0 or 1.
    return np.full((n, 28, 28), 0.5, dtype=np.float32)


@pytest.mark.parametrize("level", [0.1, 0.4, 0.75])
def test_fraction_changed_is_close_to_the_level(level):
    noisy = salt_and_pepper(grey_images(), level, np.random.default_rng(0))
    changed = noisy != 0.5
    # 156,800 pixels: the binomial standard error is below 0.0013.
    assert changed.mean() == pytest.approx(level, abs=0.006)
    # Salt and pepper come in equal parts.
    assert (noisy[changed] == 1).mean() == pytest.approx(0.5, abs=0.01)


def test_only_zeros_and_ones_are_introduced():
    x = np.random.default_rng(1).random((50, 28, 28)).astype(np.float32)
    noisy = salt_and_pepper(x, 0.3, np.random.default_rng(2))
    changed = noisy != x
    assert set(np.unique(noisy[changed])) <= {0.0, 1.0}
    assert noisy.dtype == x.dtype and noisy.shape == x.shape


def test_level_zero_returns_the_input_unchanged():
    x = np.random.default_rng(1).random((10, 784)).astype(np.float32)
    np.testing.assert_array_equal(salt_and_pepper(x, 0.0, np.random.default_rng(0)), x)


def test_level_one_leaves_no_original_pixel():
    noisy = salt_and_pepper(grey_images(20), 1.0, np.random.default_rng(0))
    assert not np.any(noisy == 0.5)


def test_input_is_not_modified_in_place():
    x = grey_images(5)
    before = x.copy()
    salt_and_pepper(x, 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)


def test_same_generator_seed_gives_the_same_noise():
    a = salt_and_pepper(grey_images(5), 0.3, np.random.default_rng(42))
    b = salt_and_pepper(grey_images(5), 0.3, np.random.default_rng(42))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("level", [-0.1, 1.5, float("nan"), float("inf")])
def test_level_outside_unit_interval_is_a_clear_error(level):
    with pytest.raises(LabError, match=r"outside \[0, 1\]"):
        salt_and_pepper(grey_images(1), level, np.random.default_rng(0))


def test_per_image_levels_broadcast():
    levels = np.array([0.0, 0.5, 1.0])[:, None, None]
    noisy = salt_and_pepper(grey_images(3), levels, np.random.default_rng(0))
    changed = (noisy != 0.5).reshape(3, -1).mean(axis=1)
    assert changed[0] == 0.0 and changed[2] == 1.0
    assert changed[1] == pytest.approx(0.5, abs=0.08)


def test_per_image_level_outside_unit_interval_is_an_error():
    with pytest.raises(LabError, match=r"outside \[0, 1\]"):
        salt_and_pepper(grey_images(2), np.array([[[0.2]], [[1.2]]]), np.random.default_rng(0))


def test_per_image_levels_stay_with_their_images_across_blocks(monkeypatch):
    from mnistlab import data

    monkeypatch.setattr(data, "NOISE_BLOCK", 3)  # 7 images: blocks of 3, 3 and 1
    levels = np.array([0, 1, 0, 1, 1, 0, 1], dtype=float)[:, None, None]
    noisy = salt_and_pepper(grey_images(7), levels, np.random.default_rng(0))
    changed = (noisy != 0.5).reshape(7, -1).mean(axis=1)
    np.testing.assert_array_equal(changed, levels.ravel())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("level", [0.3, np.array([0.0, 0.2, 0.5, 0.7, 1.0])[:, None, None]])
def test_each_pixels_draw_decides_it_as_the_lab_defines(dtype, level):
    # The draw the noise makes from this seed: below level/2 salt, up to level pepper, else kept.
    x = np.random.default_rng(1).random((5, 28, 28)).astype(dtype)
    u = np.random.default_rng(3).random(x.shape, dtype=np.float32)
    expected = np.where(u < level / 2, 1, np.where(u < level, 0, x)).astype(dtype)
    noisy = salt_and_pepper(x, level, np.random.default_rng(3))
    assert noisy.dtype == x.dtype
    np.testing.assert_array_equal(noisy, expected)
