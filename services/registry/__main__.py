"""`python -m services.registry`: run one registry process."""

from .main import main

main()
