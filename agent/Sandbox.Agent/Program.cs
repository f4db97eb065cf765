using System.Globalization;
using System.Runtime.InteropServices;
using Sandbox.Agent;
using Sandbox.Agent.Protocol;
using Sandbox.Agent.Server;

// sandbox-agent: the in-guest agent. Listening comes first; everything else happens after, on demand.
ListenAddress listen = ListenAddress.Default;
for (int i = 0; i < args.Length; i++)
{
    if (args[i] == "--listen" && i + 1 < args.Length)
    {
        if (!ListenAddress.TryParse(args[++i], out listen, out string error))
        {
            AgentLog.Write(error);
            return 2;
        }
    }
    else if (args[i] is "--version")
    {
        Console.WriteLine(AgentVersion.Text);
        return 0;
    }
    else
    {
        AgentLog.Write($"unknown argument '{args[i]}'. Usage: sandbox-agent [--listen vsock:PORT|unix:/path.sock]");
        return 2;
    }
}

var service = new AgentService(AgentRuntime.FromEnvironment());
// A VM cloned from a template reaches the agent over virtio-serial ports (it has no vsock), one for the shim and one
// for the operator's tools: listen there too when the VM has them.
var serialPorts = new[] { VirtioSerialEndPoint.AgentPortName, VirtioSerialEndPoint.ToolsPortName }
    .Select(name => VirtioSerialEndPoint.Find(name)).OfType<VirtioSerialEndPoint>().ToList();
System.Net.EndPoint[] endPoints = [listen.EndPoint, .. serialPorts];
if (serialPorts.Count > 0)
    listen = listen with { Display = $"{listen.Display} and {string.Join(", ", serialPorts)}" };
await using var server = new AgentServer(endPoints, binder => Agent.BindService(binder, service), AgentLog.Write);
try
{
    await server.StartAsync(CancellationToken.None);
}
catch (Exception e)
{
    AgentLog.Write($"cannot listen on {listen.Display}: {e.Message}");
    return 1;
}
double readyUptime = GuestFacts.UptimeSeconds();
service.MarkReady(readyUptime);
AgentLog.Write($"listening on {listen.Display} at uptime {readyUptime.ToString("F2", CultureInfo.InvariantCulture)}s");

var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stop.TrySetResult(); });
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stop.TrySetResult(); });
service.StartBackgroundWork();
await stop.Task;
AgentLog.Write("stopping");
await server.StopAsync(CancellationToken.None);
return 0;
