using System.CommandLine;
using Sandbox.Ctl;

var root = new RootCommand("sandboxctl: inspect and troubleshoot Sandbox VMs on this host");
root.Subcommands.Add(CheckCommand.Create());
root.Subcommands.Add(ListCommand.Create());
root.Subcommands.Add(GcCommand.Create());
root.Subcommands.Add(MetricsCommand.Create());
root.Subcommands.Add(ExecCommand.Create());
root.Subcommands.Add(DoctorCommand.Create());
root.Subcommands.Add(LogsCommand.Create());
root.Subcommands.Add(TemplateCommand.Create());
return await root.Parse(args).InvokeAsync();
