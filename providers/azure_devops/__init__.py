"""Azure DevOps: service hooks (Web Hooks consumer) checked by Basic auth or a token header."""

from providers.azure_devops.webhook import AzureDevOpsProvider

__all__ = ["AzureDevOpsProvider"]
