// `{{name}}`: a notify-formatter plugin for ImpressoX Workers, written in JavaScript.
//
// It renders `[channel] title` and the body as plain text, with the title as the email
// subject. Return several messages to split a long text; `throw "reason"` (a string) to
// refuse a notification (the delivery becomes a dead letter with that reason).

const NAME = "{{name}}";
const VERSION = "0.1.0";

export const formatNotification = {
  info() {
    return { name: NAME, version: VERSION, kind: "notify-formatter", description: "plain text with the channel's name" };
  },

  format(notification, channel) {
    let text = `[${channel}] ${notification.title}\n${notification.body}`;
    if (notification.priority === "critical") text = `CRITICAL ${text}`;
    return [{ text, subject: notification.title, html: undefined, parseMode: "plain" }];
  },
};
