/*
 * licctl config: the configuration checked and shown (check), and the
 * table of its keys (keys). check loads the file itself, so that it can
 * tell about a file no other command would start with (main.c skips the
 * load for this group).
 */
#include "cli.h"
#include "config.h"

#include <string.h>
#include <unistd.h>

const char *cli_conf_file;

/* check [FILE]: FILE, else the file licctl loads (-c, $LICD_CONFIG, the
 * default). Exit 0 and every key's value and source, secrets masked; or
 * exit 2 and each problem as file:line: message. */
int conf_check(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	char err[4096];

	if (o->npos > 1)
		return cli_usage(e, c);
	if (cfg_load(o->npos == 1 ? o->pos[0] : cli_conf_file, err,
	    sizeof(err)) != 0) {
		snprintf(e->msg, sizeof(e->msg), "%s\nlicctl: %s is not valid",
		    err, cfg_path());
		e->status = 2;
		return -1;
	}
	printf("# %s: valid%s\n", cfg_path(), access(cfg_path(), F_OK) ?
	    " (not found: defaults and environment only)" : "");
	cfg_print(stdout);
	return 0;
}

/* keys [--markdown]: one tab-separated line per key, or README's table. */
int conf_keys(const struct cli_cmd *c, const struct cli_opts *o,
    struct cli_err *e)
{
	static const char *const types[] = { "string", "integer", "bool",
		"enum", "list" };
	const struct cfg_key *k;
	char range[64];
	size_t i, n;

	if (o->npos > 0)
		return cli_usage(e, c);
	if (cli_opt(o, "markdown") != NULL) {
		cfg_markdown(stdout);
		return 0;
	}
	printf("key\ttype\tdefault\trange\tsecret\n");
	for (k = cfg_keys(&n), i = 0; i < n; i++) {
		if (k[i].type == CFG_INT || k[i].type == CFG_INTLIST)
			snprintf(range, sizeof(range), "%ld..%ld", k[i].min,
			    k[i].max);
		else
			snprintf(range, sizeof(range), "%s",
			    k[i].choices ? k[i].choices : "-");
		printf("%s\t%s\t%s\t%s\t%s\n", k[i].name, types[k[i].type],
		    k[i].def[0] ? k[i].def : k[i].inherit ? k[i].inherit : "-",
		    range, k[i].flags & CFG_SECRET ? "yes" : "no");
	}
	return 0;
}
