"""Data uncertainty: scores that find noisy labels, and cleaning against regularisation."""
