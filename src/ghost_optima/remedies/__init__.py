"""The remedies that break the symmetry, their symmetry-keeping twins, and fair comparisons."""
