/* The report form: "Use my current position" fills latitude and longitude from the phone's
   location (asked only when the citizen presses the button). Without geolocation, or without
   JavaScript, the button stays hidden and the form works as before. */
(function () {
  "use strict";

  function start() {
    var button = document.getElementById("locate");
    if (!button || !("geolocation" in navigator)) {
      return;
    }
    var status = document.getElementById("locate-status");
    button.hidden = false;
    button.addEventListener("click", function () {
      status.textContent = button.dataset.searching;
      navigator.geolocation.getCurrentPosition(function (position) {
        document.getElementById("lat").value = position.coords.latitude.toFixed(5);
        document.getElementById("lon").value = position.coords.longitude.toFixed(5);
        status.textContent = button.dataset.found.replace("__M__", Math.round(position.coords.accuracy));
      }, function () {
        status.textContent = button.dataset.failed;
      }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
