// The dashboard's live parts: a ticket count fetched with fetch(), and a
// ticket feed over an event stream. When the session is over, the count
// shows the 401 and the feed shows that it was closed.
(function () {
  "use strict";
  var count = document.getElementById("ticket-count");
  var countStatus = document.getElementById("count-status");
  var refresh = document.getElementById("count-refresh");
  var feed = document.getElementById("feed");
  var feedStatus = document.getElementById("feed-status");

  function loadCount() {
    countStatus.textContent = "loading…";
    countStatus.removeAttribute("data-status");
    return fetch("/api/tickets/count").then(function (r) {
      countStatus.setAttribute("data-status", String(r.status));
      if (r.status === 401) {
        countStatus.textContent = "Your session has ended (401): reload the page to sign in again.";
        return;
      }
      if (!r.ok) {
        countStatus.textContent = "error " + r.status;
        return;
      }
      return r.json().then(function (b) {
        count.textContent = String(b.open);
        countStatus.textContent = "as of " + b.at;
      });
    }).catch(function (e) {
      countStatus.setAttribute("data-status", "error");
      countStatus.textContent = "failed: " + e;
    });
  }
  if (count && refresh) {
    refresh.addEventListener("click", loadCount);
    loadCount();
  }

  if (feed && window.EventSource) {
    var es = new EventSource("/api/tickets/feed");
    es.onopen = function () {
      feedStatus.textContent = "live";
      feedStatus.setAttribute("data-state", "open");
    };
    es.onmessage = function (ev) {
      var t = JSON.parse(ev.data);
      var li = document.createElement("li");
      li.textContent = "#" + t.n + " " + t.id + " " + t.title + " (" + t.status + ")";
      feed.insertBefore(li, feed.firstChild);
      while (feed.children.length > 5) {
        feed.removeChild(feed.lastChild);
      }
      feedStatus.setAttribute("data-events", String(t.n + 1));
    };
    es.onerror = function () {
      // The browser reconnects on its own unless the answer was an error
      // (a 401 once the session is over): then the feed stays closed.
      var closed = es.readyState === EventSource.CLOSED;
      if (!feedStatus.hasAttribute("data-dropped-at")) {
        feedStatus.setAttribute("data-dropped-at", String(Date.now()));
      }
      feedStatus.textContent = closed ? "closed" : "reconnecting…";
      feedStatus.setAttribute("data-state", closed ? "closed" : "reconnecting");
      feedStatus.setAttribute("data-drops", String(Number(feedStatus.getAttribute("data-drops") || 0) + 1));
    };
  }
})();
