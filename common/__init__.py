"""The torch-free layer every package shares: errors, file writes, CLI running, images, validation,
the artifact contract (manifest + DRS maths) and MNIST's location. Imports numpy, Pillow and Typer only."""
