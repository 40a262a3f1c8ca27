"""`python -m services.config`: run one config process."""

from .main import main

main()
