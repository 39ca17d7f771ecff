"""Uploads to the Hugging Face Hub: create a repository and upload a folder to it in one commit.

Models push themselves with transformers' ``push_to_hub`` and ``hubert-ecg finetune --push_to_hub`` uses the
Trainer's own push; this helper remains for ``hubert-ecg pretrain --push_to_hub`` (its finished output directory,
without training state) until pretraining pushes through the Trainer (``hub_strategy="end"``) too.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["upload_folder"]


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    commit_message: str,
    token: bool | str | None = None,
    private: bool | None = None,
    ignore_patterns: Sequence[str] | None = None,
    revision: str | None = None,
    create_pr: bool = False,
):
    """Create ``repo_id`` on the Hub if needed (``private`` applies then) and upload ``folder`` in one commit.

    Args:
        folder: the directory to upload (e.g. written by ``save_pretrained``).
        repo_id: ``"user/name"`` or ``"name"`` (in the token's namespace).
        commit_message: the commit's message.
        token: a Hub token; None uses the saved login.
        private: visibility of a repository created here; an existing one keeps its own.
        ignore_patterns: glob patterns of files not to upload (checkpoints, optimizer state, logs).
        revision, create_pr: the branch to commit to, or open a pull request instead.

    Returns:
        ``huggingface_hub.CommitInfo`` of the upload.

    Raises:
        huggingface_hub.errors.HfHubHTTPError: when the Hub refuses (no token, no rights, offline).
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        commit_message=commit_message,
        ignore_patterns=list(ignore_patterns) if ignore_patterns else None,
        revision=revision,
        create_pr=create_pr,
    )
