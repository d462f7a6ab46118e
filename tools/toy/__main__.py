"""`python -m tools.toy --out dataset/toy-spacenet`: write the synthetic dataset."""
from tools.toy.generate import main
from utils.errors import run_cli

run_cli(main)
