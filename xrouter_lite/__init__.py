"""xrouter_lite: cost-aware LLM routing with SFT + GRPO, after xRouter (arXiv 2510.08439).

    >>> from xrouter_lite.profiles import get_profile
    >>> get_profile("smoke").name
    'smoke'
"""

__version__ = "0.1.0"
