"""`python -m services.media`: run one media process."""

from .main import main

main()
