// Herald demo page: send a test notification to the demo subscriber through the
// dev-only endpoint /demo/send (the secret key stays on the server).
const inbox = document.querySelector('herald-inbox');
const status = document.getElementById('status');
const log = document.getElementById('events');
const csrf = document.querySelector('[name=csrfmiddlewaretoken]').value;

document.getElementById('send').addEventListener('click', async () => {
  status.textContent = 'Sending…';
  try {
    const response = await fetch('/demo/send', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf },
      body: JSON.stringify({ title: document.getElementById('title').value }),
      credentials: 'same-origin',
    });
    const answer = await response.json();
    status.textContent = response.ok ? `Sent (sequence ${answer.seq ?? '?'}).` : `Refused: ${answer.detail || response.status}`;
  } catch (error) {
    status.textContent = `Failed: ${error}`;
  }
});

for (const [select, attribute] of [['theme', 'theme'], ['locale', 'locale']]) {
  document.getElementById(select).addEventListener('change', (event) => {
    if (event.target.value) inbox.setAttribute(attribute, event.target.value);
    else inbox.removeAttribute(attribute);
    document.body.dataset.theme = inbox.getAttribute('theme') || 'auto';
  });
}

for (const type of ['herald:notification', 'herald:read', 'herald:error']) {
  inbox.addEventListener(type, (event) => {
    const line = document.createElement('li');
    line.textContent = `${new Date().toLocaleTimeString()} ${type} ${JSON.stringify(event.detail).slice(0, 160)}`;
    log.prepend(line);
  });
}
