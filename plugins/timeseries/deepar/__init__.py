"""DeepAR: gluonts' PyTorch network and distribution outputs, trained by the bestiary engine."""
