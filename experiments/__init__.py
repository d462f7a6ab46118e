"""Train-and-score experiments on real data (accuracy, ablations, graph methods): unlike
`benchmarks/`, which measure speed and memory, these measure what a method scores."""
