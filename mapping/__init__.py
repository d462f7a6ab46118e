"""City-scale road mapping: scenes and mosaics of any size, block by block, out of core; one road
network."""
