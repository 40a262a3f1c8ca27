"""`python -m services.signaling`: run one signaling process."""

from .main import main

main()
