"""Published taggers: the catalogue, their weights on autotag's networks, fetching and importing them."""
