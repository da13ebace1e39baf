"""How close a reconstruction is to the original: PSNR, SSIM and the best match.

A gradient-inversion attack returns images in no particular order, so each
reconstruction is paired with the original it resembles most (highest PSNR) before it
is scored. SSIM follows Wang et al. 2004, "Image quality assessment: from error
visibility to structural similarity", https://doi.org/10.1109/TIP.2003.819861
(Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03).
"""

from __future__ import annotations

import numpy as np

#: SSIM's stabilising constants (Wang et al. 2004).
K1 = 0.01
K2 = 0.03
#: Standard deviation of SSIM's Gaussian window, in pixels.
WINDOW_SIGMA = 1.5
#: Side of SSIM's Gaussian window, when the image is at least that large.
WINDOW_SIZE = 11


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio of two arrays of the same shape, in dB.

    Parameters
    ----------
    a, b : np.ndarray
        The two arrays.
    data_range : float
        Distance between the smallest and largest possible values (1.0 for [0, 1]).

    Returns
    -------
    float
        ``10 log10(data_range² / MSE)``; ``inf`` for identical arrays.
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return _psnr_of_mse(mse, data_range)


def _psnr_of_mse(mse: float, data_range: float) -> float:
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def _gaussian_window(size: int) -> np.ndarray:
    """The normalised 2-D Gaussian window of side ``size`` (odd)."""
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    profile = np.exp(-(offsets**2) / (2 * WINDOW_SIGMA**2))
    window = np.outer(profile, profile)
    return window / window.sum()


def _local_mean(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Weighted mean of every window-sized patch of ``x`` (C, H, W), "valid" region."""
    size = window.shape[0]
    patches = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))
    return np.einsum("chwij,ij->chw", patches, window)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float | None:
    """Mean structural similarity of two images (Wang et al. 2004).

    Computed per channel with a Gaussian window (sigma 1.5, side ``min(11, H, W)``
    made odd) over the "valid" region (no padding), then averaged over channels and
    positions.

    Parameters
    ----------
    a, b : np.ndarray
        Images of the same shape (C, H, W); more leading dimensions count as channels.
    data_range : float
        Distance between the smallest and largest possible values (1.0 for [0, 1]).

    Returns
    -------
    float or None
        The mean SSIM (1.0 for identical images); ``None`` when the inputs are not
        images (fewer than 3 dimensions, or H or W below 3).
    """
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    if a.ndim < 3 or a.shape[-1] < 3 or a.shape[-2] < 3:
        return None
    height, width = a.shape[-2], a.shape[-1]
    x = np.asarray(a, np.float64).reshape(-1, height, width)
    y = np.asarray(b, np.float64).reshape(-1, height, width)

    size = min(WINDOW_SIZE, height, width)
    if size % 2 == 0:
        size -= 1
    window = _gaussian_window(size)

    mu_x = _local_mean(x, window)
    mu_y = _local_mean(y, window)
    var_x = _local_mean(x * x, window) - mu_x**2
    var_y = _local_mean(y * y, window) - mu_y**2
    cov_xy = _local_mean(x * y, window) - mu_x * mu_y

    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return float(np.mean(numerator / denominator))


def best_matches(
    reconstructions: np.ndarray, originals: np.ndarray, data_range: float
) -> list[dict]:
    """For each reconstruction, the original with the highest PSNR.

    Parameters
    ----------
    reconstructions : np.ndarray
        K reconstructions, shape (K, *shape).
    originals : np.ndarray
        N candidate originals, shape (N, *shape).
    data_range : float
        Distance between the smallest and largest possible values (1.0 for [0, 1]).

    Returns
    -------
    list of dict
        One ``{"index": int, "psnr": float, "ssim": float | None}`` per reconstruction:
        the best original's index, the pair's PSNR and its SSIM.
    """
    if reconstructions.shape[1:] != originals.shape[1:]:
        raise ValueError(
            f"example shapes differ: {reconstructions.shape[1:]} and {originals.shape[1:]}"
        )
    if len(originals) == 0:
        raise ValueError("no originals to match against")
    flat_originals = np.asarray(originals, np.float64).reshape(len(originals), -1)
    matches: list[dict] = []
    for reconstruction in reconstructions:
        flat = np.asarray(reconstruction, np.float64).reshape(1, -1)
        mse = np.mean((flat_originals - flat) ** 2, axis=1)
        index = int(np.argmin(mse))
        matches.append(
            {
                "index": index,
                "psnr": _psnr_of_mse(float(mse[index]), data_range),
                "ssim": ssim(reconstruction, originals[index], data_range),
            }
        )
    return matches
