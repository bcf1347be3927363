"""The build: profiles and parameters, the papermill runs as Dask tasks, results and the render."""
