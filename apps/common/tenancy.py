def request_merchant(request):
    """The merchant a request acts for: the API key's, or the signed-in staff member's."""
    return getattr(request.user, "merchant", None)
