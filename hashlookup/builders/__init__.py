"""Write side: index and dataset builders, Bloom filter export, signing."""
