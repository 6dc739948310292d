"""tova-deploy: deploy Tova apps to your own Linux servers with git push."""

__version__ = "0.1.0"
