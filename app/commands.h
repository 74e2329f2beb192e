/* app/commands.h: how a subcommand joins the re2tal binary. Each cmd_<name>.c registers itself
 * with TAL_COMMAND, so adding a command touches no other file. */
#ifndef TAL_APP_COMMANDS_H
#define TAL_APP_COMMANDS_H

/* Runs the subcommand; argv[0] is the subcommand's name. Returns the process exit code:
 * 0 success, 1 failure (bad input, reported), 2 usage error. */
typedef int (*tal_command_fn)(int argc, char **argv);

typedef struct tal_command {
    const char *name;
    const char *summary; /* one line for `re2tal --help` */
    int order;           /* position in --help: lower first */
    tal_command_fn run;
} tal_command;

void tal_command_register(const tal_command *cmd);

#define TAL_COMMAND(name_, order_, summary_, fn_)                                             \
    static const tal_command command_##fn_ = {name_, summary_, order_, fn_};                  \
    __attribute__((constructor)) static void register_##fn_(void) {                           \
        tal_command_register(&command_##fn_);                                                 \
    }

/* True if argv[i] is -h or --help. */
int tal_is_help(const char *arg);

#endif
