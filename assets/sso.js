// Standalone sign-in with clerk-js (loaded by script tag from the Clerk instance's Frontend API).
// /sso?__clerk_ticket=… signs in with the ticket (strategy "ticket"), makes the user's organization active
// (our tenant routes need it) and goes to /app; /app without a session mounts Clerk's SignIn.
(function () {
  "use strict";
  var body = document.body;
  var status = document.getElementById("sso-status");

  function fail() {
    if (status) status.textContent = body.dataset.msgFailed;
  }

  function activeOrganization(clerk) {
    var memberships = (clerk.user && clerk.user.organizationMemberships) || [];
    return memberships.length ? memberships[0].organization.id : null;
  }

  function goToApp(clerk) {
    var organization = clerk.organization ? null : activeOrganization(clerk);
    var done = organization ? clerk.setActive({ organization: organization }) : Promise.resolve();
    return done.then(function () { window.location.replace("/app/home?lang=" + (body.dataset.lang || "ar")); });
  }

  var clerk = window.Clerk;
  if (!clerk) { fail(); return; }
  clerk.load().then(function () {
    var ticket = new URLSearchParams(window.location.search).get("__clerk_ticket");
    if (body.dataset.mode === "ticket") {
      if (!ticket) { fail(); return null; }
      return clerk.client.signIn.create({ strategy: "ticket", ticket: ticket }).then(function (signIn) {
        if (signIn.status !== "complete") { fail(); return null; }
        return clerk.setActive({ session: signIn.createdSessionId }).then(function () { return goToApp(clerk); });
      });
    }
    if (clerk.user) return goToApp(clerk);
    if (status) status.hidden = true;
    clerk.mountSignIn(document.getElementById("sign-in"), { forceRedirectUrl: window.location.href });
    clerk.addListener(function (resources) {
      if (resources.user) goToApp(clerk);
    });
    return null;
  }).catch(fail);
})();
