// OAuth 2.0 Form Post Response Mode: submit the authorization response to the client.
document.getElementById("form-post").submit();
