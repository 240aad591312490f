"""The prompt lab: bias analysis of a prompt, rewrite suggestions, and A/B runs of prompts."""
