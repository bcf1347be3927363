"""The permutation (and sign) group of an MLP: declared once, counted, and used to align
networks."""
