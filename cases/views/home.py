from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

HOME_BY_ROLE = {"lender": "portal-home", "agent": "queue", "supervisor": "supervisor-home", "admin": "supervisor-home"}


@login_required
def home(request):
    """Send each role to its own home page."""
    user = request.user
    name = "supervisor-home" if user.is_supervisor else HOME_BY_ROLE.get(user.role)
    return redirect(name) if name else render(request, "home.html")
