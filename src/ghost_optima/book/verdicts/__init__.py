"""Claims and their rules, what a notebook records, the rules' history and the replications."""
