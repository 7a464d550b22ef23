from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render


@login_required
def home(request):
    """Send each role to its own home page."""
    user = request.user
    for role, name in (("lender", "portal-home"), ("agent", "queue"), ("supervisor", "supervisor-home")):
        if (role == "supervisor" and user.is_supervisor) or user.role == role:
            try:
                return redirect(name)
            except Exception:  # noqa: BLE001 - page not installed yet: fall back to the plain home
                break
    return render(request, "home.html")
