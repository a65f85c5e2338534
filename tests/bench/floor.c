/*
 * The FastCGI floor for `make bench`: the cheapest possible FastCGI
 * program (fixed JSON, no parsing, no database), run under spawn-fcgi
 * behind the same nginx settings as licd. licd's validate is measured
 * against it: what the FastCGI transport alone costs on this machine.
 */
#include <fcgiapp.h>

int main(void)
{
	FCGX_Request req;
	static const char body[] =
	    "Status: 200 OK\r\nContent-Type: application/json\r\n"
	    "Content-Length: 12\r\n\r\n{\"ok\":true}\n";

	FCGX_Init();
	FCGX_InitRequest(&req, 0, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		FCGX_PutStr(body, sizeof(body) - 1, req.out);
		FCGX_Finish_r(&req);
	}
	return 0;
}
