"""The synthetic toy-spacenet generator: road networks (`roads`), imagery (`imagery`), tiles and
command (`generate`)."""
