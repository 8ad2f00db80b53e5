// userbase's passkeys on its hosted pages (docs/mfa.md): the one script they run.
// A form with data-passkey="create" or "get" first POSTs its fields to data-options-url,
// which answers the WebAuthn options as JSON; the browser's authenticator answers them, and
// the form is sent with that answer (PublicKeyCredential.toJSON()) in its `credential` field.
// Every check of the answer is the server's (py_webauthn).
"use strict";

async function fetchOptions(form) {
  const fields = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (name !== "credential" && typeof value === "string") fields.append(name, value);
  }
  const response = await fetch(form.dataset.optionsUrl, {
    method: "POST",
    body: fields,
    credentials: "same-origin",
    headers: { Accept: "application/json" },
  });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || "The passkey could not be used.");
  return body;
}

async function answer(form) {
  const options = await fetchOptions(form);
  if (form.dataset.passkey === "create") {
    const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
    return navigator.credentials.create({ publicKey });
  }
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return navigator.credentials.get({ publicKey });
}

function showError(form, message) {
  const error = form.querySelector("[data-passkey-error]");
  if (error) {
    error.textContent = message;
    error.hidden = false;
  }
}

function enable(form) {
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseRequestOptionsFromJSON) {
    showError(form, "This browser cannot use passkeys.");
    form.querySelector("button").disabled = true;
    return;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const credential = await answer(form);
      form.elements.credential.value = JSON.stringify(credential.toJSON());
      // What only the options needed (the current password) is not sent again.
      form.querySelectorAll("[data-options-only]").forEach((input) => { input.value = ""; });
      form.submit(); // no submit event: this handler does not run again
    } catch (error) {
      const name = error instanceof DOMException ? error.name : "";
      if (name === "NotAllowedError") showError(form, "The passkey was not used. Try again.");
      // The page is not at the address passkeys are registered for (USERBASE_PUBLIC_URL).
      else if (name === "SecurityError") showError(form, "Passkeys work only at this service's own address.");
      else showError(form, error.message);
    }
  });
}

document.querySelectorAll("form[data-passkey]").forEach(enable);
