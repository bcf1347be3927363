"""The loss landscape: critical points, spurious minima, Hessians, gradient noise and basins."""
