"""The float networks of HAM (hiercodec.nn.ham): shapes, the masks of eq. 3, and that the masked
self-prediction teacher never sees the region it predicts."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

from hiercodec.nn.ham import (
    MASKS_PER_IMAGE, AuxiliaryDecoder, HAMEncoder, MSPTeacher, at_centres, msp_losses, msp_mask, one_hot,
)


def test_one_hot_tells_masked_from_black():
    """Appendix A: a masked position ([0, ..., 0]) differs from a black one ([1, 0, ..., 0])."""
    v = torch.tensor([[[0, 2], [3, 1]]])[..., None]  # (B=1, H=2, W=2, C=1)
    planes = one_hot(v, 4)
    assert planes.shape == (1, 4, 2, 2)
    assert planes[0, :, 0, 0].tolist() == [1, 0, 0, 0]  # black
    assert (planes.sum(dim=1) == 1).all()
    masked = planes * torch.tensor([[[[0.0, 1.0], [1.0, 1.0]]]])
    assert masked[0, :, 0, 0].tolist() == [0, 0, 0, 0] != planes[0, :, 0, 0].tolist()
    rgb = torch.tensor([[[[5, 6, 7]]]])  # channel c's planes are together
    assert one_hot(rgb, 8)[0, :, 0, 0].nonzero().flatten().tolist() == [5, 8 + 6, 16 + 7]


@pytest.mark.parametrize("size", sorted(MASKS_PER_IMAGE))
def test_masks_cover_each_centres_square(size):
    g = torch.Generator().manual_seed(size)
    mask, centres = msp_mask(3, 21, 17, size, generator=g)
    assert mask.shape == (3, 1, 21, 17) and centres.shape == (3, MASKS_PER_IMAGE[size], 2)
    s = size // 2
    for b in range(3):
        for i, j in centres[b].tolist():
            square = mask[b, 0, max(0, i - s) : i + s + 1, max(0, j - s) : j + s + 1]
            assert (square == 0).all()
    # nothing else is masked: the union of the squares, exactly
    inside = torch.zeros(3, 21, 17, dtype=torch.bool)
    for b in range(3):
        for i, j in centres[b].tolist():
            inside[b, max(0, i - s) : i + s + 1, max(0, j - s) : j + s + 1] = True
    assert torch.equal(mask[:, 0] == 0, inside)


def test_mask_size_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        msp_mask(1, 8, 8, 4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), size=st.sampled_from([1, 3, 5, 7]), h=st.integers(3, 12),
       w=st.integers(3, 12))
def test_teacher_never_sees_the_region_it_predicts(seed, size, h, w):
    """Values inside any masked square may be anything: the teacher's output (everywhere, so also
    at the centres it predicts) is the same bit for bit."""
    torch.manual_seed(0)
    k, c = 4, 2
    teacher = MSPTeacher(c, k, hidden=8, residual=4, layers=2).eval()
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, k, (2, h, w, c), generator=g)
    mask, centres = msp_mask(2, h, w, size, count=3, generator=g)
    changed = torch.where(mask[:, 0, :, :, None] == 0, torch.randint(0, k, values.shape, generator=g), values)
    with torch.no_grad():
        a = teacher(one_hot(values, k), mask)
        b = teacher(one_hot(changed, k), mask)
    assert torch.equal(a, b)
    assert torch.equal(at_centres(a, centres), at_centres(b, centres))


def test_encoder_and_auxiliary_decoder_shapes():
    torch.manual_seed(0)
    enc = HAMEncoder(3, hidden=16, residual=8, layers=2, codes=32, code_dim=4)
    q, codes, commitment = enc(torch.randn(2, 3, 12, 10))
    assert q.shape == (2, 4, 6, 5) and codes.shape == (2, 6, 5) and commitment.shape == (2,)
    assert codes.min() >= 0 and codes.max() < 32
    aux = AuxiliaryDecoder(4, hidden=16, layers=1, out_channels=3)
    assert aux(q).shape == (2, 3, 12, 10)


def test_msp_losses_train_the_teacher_and_distil_into_the_student_only():
    """The teacher's loss reaches the teacher, the distillation loss reaches the student and never
    the teacher (sec. 4.2; Fig. 4's dashed arrow)."""
    torch.manual_seed(0)
    k, c = 8, 3
    teacher = MSPTeacher(c, k, hidden=8, residual=4, layers=1)
    enc = HAMEncoder(c * k, hidden=8, residual=4, layers=1, codes=16, code_dim=4)
    student = AuxiliaryDecoder(4, hidden=8, layers=1, out_channels=c * k)
    values = torch.randint(0, k, (2, 8, 8, c))
    q, _, _ = enc(one_hot(values, k))
    t_loss, d_loss = msp_losses(teacher, student(q), values, 3, generator=torch.Generator().manual_seed(1))
    assert torch.isfinite(t_loss) and torch.isfinite(d_loss)
    d_loss.backward(retain_graph=True)
    assert all(p.grad is None for p in teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    t_loss.backward()
    assert all(p.grad is not None for p in teacher.parameters())


def test_teacher_learns_what_its_context_predicts():
    """A few steps on images whose every value equals its row's first value: the teacher, which
    sees the rest of the row, gets far better than uniform (log 8 = 2.08 nats) at the centres."""
    torch.manual_seed(0)
    k = 8
    teacher = MSPTeacher(1, k, hidden=16, residual=8, layers=2)
    opt = torch.optim.Adam(teacher.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        rows = torch.randint(0, k, (8, 12, 1, 1), generator=g)
        values = rows.expand(8, 12, 12, 1)
        loss, _ = msp_losses(teacher, torch.zeros(8, k, 12, 12), values, 1, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7
