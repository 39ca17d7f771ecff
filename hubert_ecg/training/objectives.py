"""Pretraining objectives of ``hubert-ecg pretrain``: HuBERT masked prediction, CMSC, SimCLR, and HuBERT plus one
contrastive loss.

==================  ====================================================================================================
``--objective``     what is learned
==================  ====================================================================================================
``hubert``          masked prediction of k-means cluster ids (HuBERT; the model's own loss, needs ``--labels_dirs``)
``cmsc``            Contrastive Multi-Segment Coding (Kiyasseh et al., "CLOCS", ICML 2021; fairseq-signals
                    ``cmsc_criterion.py``): two adjacent 5 s segments of one record are a positive pair, the other
                    segments of the batch (on every process) are negatives (:func:`cmsc_loss`)
``simclr``          SimCLR (Chen et al. 2020; on ECGs e.g. Mehari & Strodthoff 2022, TILES-ECG): two augmented views of
                    one window are a positive pair under the NT-Xent loss (:func:`nt_xent_loss`)
``hubert+cmsc``     ``hubert loss + contrastive_weight * cmsc loss`` on one forward pass of the masked segments (the
``hubert+simclr``   form of ECG-FM's W2V+CMSC); likewise with SimCLR's two masked, augmented views
==================  ====================================================================================================

The contrastive losses compare the model's ``contrastive_embeddings`` (the projection head of
:class:`~hubert_ecg.HuBERTECGForPreTraining` on the frames' mean), L2-normalised, by cosine similarity over
``config.contrastive_temperature`` (0.1). When several processes train (``accelerate launch``, ``torchrun``), every
process gathers the embeddings of all processes *with their gradient* (:func:`gather_with_grad`) and computes the
loss of the whole global batch: the loss is the one a single process would compute on the global batch, and the
negatives of a segment are the segments of every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "CONTRASTIVE_OBJECTIVES",
    "OBJECTIVES",
    "Objective",
    "cmsc_loss",
    "contrastive_loss",
    "gather_with_grad",
    "nt_xent_loss",
    "per_sample_contrastive_loss",
    "per_sample_masked_loss",
]

CONTRASTIVE_OBJECTIVES = ("cmsc", "simclr")
OBJECTIVES = ("hubert", "cmsc", "simclr", "hubert+cmsc", "hubert+simclr")


@dataclass(frozen=True)
class Objective:
    """A pretraining objective: HuBERT masked prediction, one contrastive loss, or their weighted sum.

    Args:
        hubert: whether the masked-prediction loss (cluster labels) is part of it.
        contrastive: ``"cmsc"``, ``"simclr"`` or None.
        contrastive_weight: weight of the contrastive loss in ``hubert + weight * contrastive`` (ignored alone).
    """

    hubert: bool = True
    contrastive: str | None = None
    contrastive_weight: float = 1.0

    @classmethod
    def parse(cls, name: str, contrastive_weight: float = 1.0, where: str = "--objective") -> "Objective":
        """The objective named ``name`` (one of :data:`OBJECTIVES`; ``"cmsc+hubert"`` is ``"hubert+cmsc"``).

        Raises:
            ValueError: for another name, or a negative or non-finite ``contrastive_weight``.
        """
        parts = sorted(p.strip().lower() for p in str(name).split("+"))
        contrastive = [p for p in parts if p in CONTRASTIVE_OBJECTIVES]
        if (len(contrastive) > 1 or any(p not in ("hubert", *CONTRASTIVE_OBJECTIVES) for p in parts)
                or parts.count("hubert") > 1 or not parts):
            raise ValueError(f"{where} must be one of {', '.join(OBJECTIVES)}, got {name!r}")
        weight = float(contrastive_weight)
        if not (weight >= 0 and weight < float("inf")):
            raise ValueError(f"--contrastive_weight must be a finite number >= 0, got {contrastive_weight!r}")
        return cls(hubert="hubert" in parts, contrastive=contrastive[0] if contrastive else None,
                   contrastive_weight=weight)

    @property
    def name(self) -> str:
        """``"hubert"``, ``"cmsc"``, ``"simclr"``, ``"hubert+cmsc"`` or ``"hubert+simclr"``."""
        return "+".join(p for p in ("hubert" if self.hubert else None, self.contrastive) if p)

    def combine(self, hubert_loss: torch.Tensor | None, contrastive: torch.Tensor | None) -> torch.Tensor:
        """The training loss: ``hubert_loss + contrastive_weight * contrastive`` for a sum, else the one loss.

        Raises:
            ValueError: when a loss the objective needs is None (no labels for ``hubert``, no contrastive head).
        """
        if self.hubert and hubert_loss is None:
            raise ValueError(f"objective {self.name} needs the masked-prediction loss: the batch has no `labels`")
        if self.contrastive and contrastive is None:
            raise ValueError(f"objective {self.name} needs `contrastive_embeddings` (contrastive_projection_sizes)")
        if self.hubert and self.contrastive:
            return hubert_loss + self.contrastive_weight * contrastive
        return hubert_loss if self.hubert else contrastive


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather_rows(tensor: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """All-gather ``tensor`` (counts[rank], ...) of every process, padded to the longest, concatenated without the
    padding (no gradient)."""
    import torch.distributed as dist

    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([part[:n] for part, n in zip(parts, counts)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """:func:`_all_gather_rows` whose backward sums the gradient of every process's loss with respect to this
    process's rows (an all-reduce of the gradient, then this process's slice)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, counts: list[int], rank: int):
        ctx.counts, ctx.rank = counts, rank
        return _all_gather_rows(tensor.detach(), counts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        import torch.distributed as dist

        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]], None, None


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (rows, ...) of every process along dim 0, in process order, keeping the gradient.

    The same on every process; ``tensor`` itself when ``torch.distributed`` is not initialised or has one process.
    The backward pass sums, over processes, the gradient of each process's loss with respect to this process's rows
    (all-reduce). When every process computes the same loss ``L`` of the gathered batch (as
    :func:`contrastive_loss` does), a process's rows therefore get ``world_size * dL/drows``, and DDP's average of
    the parameter gradients over processes gives exactly ``dL/dparameters``. accelerate's ``gather`` has no
    gradient; ``torch.distributed.nn.functional.all_gather`` is deprecated and needs equal row counts.

    Args:
        tensor: (rows, ...) on this process; rows may differ between processes, the other dimensions may not.

    Returns:
        (sum of rows over processes, ...).
    """
    rank, world = _world()
    if world == 1:
        return tensor
    import torch.distributed as dist

    count = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    counts = [int(c.item()) for c in counts]
    if not tensor.requires_grad:
        return _all_gather_rows(tensor, counts)
    return _GatherWithGrad.apply(tensor, counts, rank)


def cmsc_loss(
    embeddings_a: torch.Tensor,
    embeddings_b: torch.Tensor,
    groups_a: torch.Tensor,
    groups_b: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> torch.Tensor:
    r"""Contrastive Multi-Segment Coding loss (Kiyasseh et al., ICML 2021; as fairseq-signals' ``cmsc_criterion``).

    With :math:`a_i`, :math:`b_j` the L2-normalised embeddings of the first and second segments and
    :math:`s_{ij} = a_i \cdot b_j / \tau`, the positives are the pairs of segments of the same group (record):
    :math:`P = \{(i, j): g^a_i = g^b_j\}`, and every other second segment is a negative of a first segment and
    vice versa. The loss is symmetric:

    .. math:: \frac{1}{2} \operatorname{mean}_{(i,j) \in P} -\log \operatorname{softmax}_j(s_{i\cdot})
              + \frac{1}{2} \operatorname{mean}_{(i,j) \in P} -\log \operatorname{softmax}_i(s_{\cdot j})

    With one pair per record in the batch, :math:`P` is the diagonal: a symmetric InfoNCE over the :math:`N \times N`
    similarity matrix. (fairseq-signals divides by the detached norm; here the normalisation is differentiated,
    as in the CLOCS code.)

    Args:
        embeddings_a: (N, dim), the first segments (any scale; normalised here).
        embeddings_b: (M, dim), the second segments.
        groups_a: int (N,), the record (group) of each first segment.
        groups_b: int (M,), the record of each second segment (default: ``groups_a``).
        temperature: :math:`\tau` > 0 (0.1 in CMSC).

    Returns:
        scalar float32 loss.

    Raises:
        ValueError: when a segment has no positive (its group is absent from the other side) or shapes disagree.
    """
    groups_b = groups_a if groups_b is None else groups_b
    if embeddings_a.dim() != 2 or embeddings_b.dim() != 2 or embeddings_a.shape[1] != embeddings_b.shape[1]:
        raise ValueError(f"embeddings must be (N, dim) and (M, dim), got {tuple(embeddings_a.shape)} and "
                         f"{tuple(embeddings_b.shape)}")
    if groups_a.shape != embeddings_a.shape[:1] or groups_b.shape != embeddings_b.shape[:1]:
        raise ValueError("one group id per embedding is needed")
    a = F.normalize(embeddings_a.float(), dim=-1, eps=1e-8)
    b = F.normalize(embeddings_b.float(), dim=-1, eps=1e-8)
    logits = a @ b.T / float(temperature)
    target = groups_a.reshape(-1, 1).to(logits.device) == groups_b.reshape(1, -1).to(logits.device)
    if not (target.any(dim=1).all() and target.any(dim=0).all()):
        raise ValueError("every segment needs a positive: a segment of the same group on the other side")
    first = -F.log_softmax(logits, dim=1)[target].mean()
    second = -F.log_softmax(logits.T, dim=1)[target.T].mean()
    return (first + second) / 2


def nt_xent_loss(embeddings_a: torch.Tensor, embeddings_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    r"""NT-Xent, SimCLR's normalised temperature-scaled cross-entropy (Chen et al., ICML 2020).

    The :math:`2N` L2-normalised embeddings :math:`z = [a; b]` are compared by :math:`s_{kl} = z_k \cdot z_l / \tau`;
    the positive of :math:`a_i` is :math:`b_i` and vice versa, the other :math:`2N - 2` embeddings are negatives
    (a view is never its own negative):

    .. math:: \frac{1}{2N} \sum_k -\log \frac{\exp s_{k,p(k)}}{\sum_{l \ne k} \exp s_{kl}}

    Args:
        embeddings_a, embeddings_b: (N, dim), the two views of the same N samples, in the same order.
        temperature: :math:`\tau` > 0.

    Returns:
        scalar float32 loss.

    Raises:
        ValueError: when the two views do not have the same shape (N, dim).
    """
    if embeddings_a.shape != embeddings_b.shape or embeddings_a.dim() != 2:
        raise ValueError(f"the two views must both be (N, dim), got {tuple(embeddings_a.shape)} and "
                         f"{tuple(embeddings_b.shape)}")
    n = embeddings_a.shape[0]
    z = F.normalize(torch.cat([embeddings_a, embeddings_b]).float(), dim=-1, eps=1e-8)
    logits = z @ z.T / float(temperature)
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, positives)


def contrastive_loss(
    kind: str, embeddings: torch.Tensor, groups: torch.Tensor, temperature: float, gather: bool = True
) -> torch.Tensor:
    """The contrastive loss ``kind`` of a batch from :class:`~hubert_ecg.training.collators.DataCollatorForContrastivePretraining`,
    over the global batch of all processes.

    Args:
        kind: ``"cmsc"`` (:func:`cmsc_loss`) or ``"simclr"`` (:func:`nt_xent_loss`).
        embeddings: (2B, dim) ``contrastive_embeddings`` of the batch's segments: the first segment (view) of its B
            samples, then their second ones, in the same order.
        groups: int (B,) the sample's group: its record for CMSC (segments of one record are positives), unused by
            SimCLR.
        temperature: > 0 (``config.contrastive_temperature``).
        gather: gather the embeddings (with gradient) and groups of every process (:func:`gather_with_grad`).

    Returns:
        scalar float32 loss, the same on every process.

    Raises:
        ValueError: for another ``kind`` or embeddings that are not (2 * len(groups), dim).
    """
    half = int(groups.shape[0])
    if embeddings.dim() != 2 or embeddings.shape[0] != 2 * half:
        raise ValueError(f"contrastive embeddings must be (2 * {half}, dim), got {tuple(embeddings.shape)}")
    first, second = embeddings[:half], embeddings[half:]
    if gather:
        first, second = gather_with_grad(first), gather_with_grad(second)
        groups = gather_with_grad(groups.to(embeddings.device))
    if kind == "cmsc":
        return cmsc_loss(first, second, groups, groups, temperature)
    if kind == "simclr":
        return nt_xent_loss(first, second, temperature)
    raise ValueError(f"unknown contrastive objective {kind!r}; expected one of {CONTRASTIVE_OBJECTIVES}")


def per_sample_masked_loss(
    logits: Sequence[torch.Tensor], labels: torch.Tensor, mask_time_indices: torch.Tensor | None,
    unmasked_loss_weight: float = 0.0, frame_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The masked-prediction loss of every window alone: the loss of
    :meth:`~hubert_ecg.HuBERTECGForPreTraining.compute_loss` (per codebook, the mean cross-entropy over the window's
    masked valid frames plus ``unmasked_loss_weight`` times the mean over its unmasked ones, summed over codebooks)
    with the means taken per window instead of over the batch.

    Args:
        logits: one (batch, frames, vocab) tensor per codebook (the model's ``logits``).
        labels: int (batch, num_codebooks, frames) or (batch, frames); -100 frames are ignored.
        mask_time_indices: bool (batch, frames), True where masked (None: every frame).
        unmasked_loss_weight: ``config.unmasked_loss_weight``.
        frame_mask: optional bool (batch, frames), False on padding.

    Returns:
        float32 (batch,), detached. (Its mean equals the batch loss when every window has the same number of masked
        frames.)
    """
    with torch.no_grad():
        if labels.dim() == 2:
            labels = labels.unsqueeze(1)
        valid = labels != -100
        if frame_mask is not None:
            valid = valid & frame_mask.unsqueeze(1)
        masked = torch.ones_like(valid[:, 0]) if mask_time_indices is None else mask_time_indices.to(valid.device).bool()
        loss = torch.zeros(labels.shape[0], device=labels.device)
        for i, codebook_logits in enumerate(logits):
            per_frame = torch.nn.functional.cross_entropy(
                codebook_logits.float().transpose(1, 2), labels[:, i].clamp(min=0), reduction="none")
            on_masked = (valid[:, i] & masked).float()
            loss = loss + (per_frame * on_masked).sum(1) / on_masked.sum(1).clamp(min=1)
            if unmasked_loss_weight > 0:
                on_unmasked = (valid[:, i] & ~masked).float()
                loss = loss + unmasked_loss_weight * (per_frame * on_unmasked).sum(1) / on_unmasked.sum(1).clamp(min=1)
        return loss


def per_sample_contrastive_loss(kind: str, embeddings: torch.Tensor, groups: torch.Tensor,
                                temperature: float) -> torch.Tensor:
    """Each sample's share of the contrastive loss of :func:`~hubert_ecg.training.objectives.contrastive_loss`, over
    the global batch (the embeddings of every process are gathered, without gradient).

    SimCLR: the mean of the NT-Xent terms of the sample's two views (their mean over the samples is the loss).
    CMSC: the mean of the sample's first-segment term (its row of the similarity matrix, averaged over its positives)
    and its second-segment term (its column); their mean over the samples is the loss when every record has one
    pair in the global batch, a close share of it otherwise.

    Args:
        kind: ``"cmsc"`` or ``"simclr"``.
        embeddings: (2B, dim) this process's ``contrastive_embeddings``: first segments (views) then second ones.
        groups: int (B,) the samples' groups (records).
        temperature: > 0.

    Returns:
        float32 (B,), detached: the shares of this process's samples.
    """
    import torch.distributed as dist
    import torch.nn.functional as F

    with torch.no_grad():
        half = int(groups.shape[0])
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        first, second = gather_with_grad(embeddings[:half].detach()), gather_with_grad(embeddings[half:].detach())
        groups = gather_with_grad(groups.to(embeddings.device))
        mine = gather_with_grad(torch.full((half,), rank, device=embeddings.device, dtype=torch.long)) == rank
        a = F.normalize(first.float(), dim=-1, eps=1e-8)
        b = F.normalize(second.float(), dim=-1, eps=1e-8)
        if kind == "cmsc":
            logits = a @ b.T / float(temperature)
            target = (groups.reshape(-1, 1) == groups.reshape(1, -1)).float()
            rows = (-F.log_softmax(logits, dim=1) * target).sum(1) / target.sum(1).clamp(min=1)
            cols = (-F.log_softmax(logits.T, dim=1) * target.T).sum(1) / target.T.sum(1).clamp(min=1)
            share = (rows + cols) / 2
        elif kind == "simclr":
            n = a.shape[0]
            z = torch.cat([a, b])
            logits = (z @ z.T / float(temperature)).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                                               float("-inf"))
            positives = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
            terms = F.cross_entropy(logits, positives, reduction="none")
            share = (terms[:n] + terms[n:]) / 2
        else:
            raise ValueError(f"unknown contrastive objective {kind!r}")
        return share[mine]
