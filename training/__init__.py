"""Training side: MNIST data, priors, objectives, models, presets and the `train-gan` loop."""
