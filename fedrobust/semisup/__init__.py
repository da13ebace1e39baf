"""Semi-supervised learning with few labels: the ``train.semi_supervised`` section in
``config``, each client's labelled / unlabelled split (``split``), the weak and strong
augmentations (``augment``), pseudo-labelling and FixMatch (``methods``) and the client
hook that wires them into a local round (``client``).
"""
