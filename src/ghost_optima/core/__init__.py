"""The ground floor: the one MLP, the data sets, the ensemble trainer and the statistics."""
