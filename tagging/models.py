"""Captions, embeddings and tags are added by the AI pipeline (issue: AI pipeline)."""
