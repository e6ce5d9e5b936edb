"""Generator pose conditioning with label swapping, and GSGAN's mapping network preset."""

import pytest
import torch

from aware3d.nn import gsgan_decoder_256, gsgan_mapping
from aware3d.training import (
    GSGAN_SWAP_PROBABILITY,
    swap_conditioning_labels,
    swap_probability,
)


def test_swap_probability_fades_from_one_to_the_final_value():
    assert swap_probability(0, 0.5) == 1.0
    assert swap_probability(500_000, 0.5) == pytest.approx(0.75)
    assert swap_probability(1_000_000, 0.5) == 0.5
    assert swap_probability(5_000_000, 0.8) == pytest.approx(0.8)
    assert swap_probability(0, 0.8, fade_images=0) == 0.8  # resuming: no fade
    assert GSGAN_SWAP_PROBABILITY == {"ffhq": 0.5, "afhq": 0.8}
    for bad in ({"images_seen": -1}, {"final": 1.5}, {"fade_images": -2}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            swap_probability(**{"images_seen": 0, **bad})


def test_swapped_rows_take_their_batch_neighbours_label():
    labels = torch.arange(8 * 25, dtype=torch.float32).reshape(8, 25)
    torch.testing.assert_close(swap_conditioning_labels(labels, 0.0), labels, rtol=0, atol=0)
    rolled = swap_conditioning_labels(labels, 1.0)
    torch.testing.assert_close(rolled, labels.roll(1, 0), rtol=0, atol=0)
    generator = torch.Generator().manual_seed(0)
    out = swap_conditioning_labels(labels, 0.5, generator=generator)
    draws = torch.rand(8, 1, generator=torch.Generator().manual_seed(0))
    expected = torch.where(draws < 0.5, labels.roll(1, 0), labels)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    swapped = torch.cat([swap_conditioning_labels(labels, 0.3) != labels for _ in range(200)]).any(
        dim=-1
    )
    assert 0.2 < swapped.float().mean().item() < 0.4  # about 30% of the rows, 1,600 draws
    with pytest.raises(ValueError, match="probability"):
        swap_conditioning_labels(labels, 1.1)


def test_gsgan_mapping_has_depth_two_and_one_extra_style_for_the_background():
    decoder = gsgan_decoder_256()
    mapping = gsgan_mapping(decoder.num_ws + 1)
    assert mapping.num_layers == 2
    assert (mapping.z_dim, mapping.w_dim, mapping.c_dim) == (512, 512, 25)
    ws = mapping(torch.randn(2, 512), torch.randn(2, 25))
    assert ws.shape == (2, 17, 512)
