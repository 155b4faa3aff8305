//! The web app (yew); built in the page issue.
