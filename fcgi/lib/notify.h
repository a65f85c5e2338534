/*
 * notify: delivery of one outbox notification (licd-lifecycle) by e-mail
 * (SMTP through libcurl: smtp_url, smtp_from, optional smtp_user and
 * smtp_password) and/or an HTTP POST to the vendor's notify_webhook_url,
 * signed like Stripe signs (Licd-Signature: t=…,v1=HMAC-SHA256 of "t.body"
 * with notify_webhook_secret). Both carry the notification id (Message-ID,
 * Idempotency-Key) so a receiver can drop the rare repeat that a crash
 * between sending and recording can cause.
 */
#ifndef LICD_NOTIFY_H
#define LICD_NOTIFY_H

#include <stddef.h>

struct notification {
	const char *id;
	const char *kind;
	const char *recipient;	/* NULL: no e-mail */
	const char *payload;	/* JSON object text */
	const char *license_id;
	const char *created_at;
};

/* Which channels are configured. */
int notify_email_enabled(void);
int notify_webhook_enabled(void);

/* 0 on success; otherwise -1 with a reason in err (never a secret). */
int notify_send_email(const struct notification *n, char *err, size_t errlen);
int notify_send_webhook(const struct notification *n, char *err,
    size_t errlen);

/* Subject line of a notification kind (for e-mail and logs). */
void notify_subject(const struct notification *n, char *out, size_t len);

#endif
