"""Adversarial robustness: torchattacks registry, adversarial training, robust evaluation."""
