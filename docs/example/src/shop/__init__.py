"""A tiny shop, the code the example agents look at."""
