"""Privacy attacks: what a curious server (gradient inversion) or a model user
(membership inference) learns from a run."""
