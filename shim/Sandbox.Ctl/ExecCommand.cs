using System.CommandLine;
using Grpc.Core;
using Sandbox.Native;
using Sandbox.Runtime.Agent;
using Sandbox.Runtime.Sandboxes;

namespace Sandbox.Ctl;

/// <summary>
/// `sandboxctl exec ID [-- CMD...]`: a shell (or CMD) in the guest VM itself, as root, outside every container, through
/// its agent's debug console. With a terminal on stdin it runs on a pty in the guest and this terminal goes raw; `-T`
/// turns that off. Off unless the sandbox was started with `[agent] debug_console = true`; the refusal says so. Exit
/// status: the command's, 2 when the ID is unknown, 1 when the console cannot be reached or is off.
/// </summary>
public static class ExecCommand
{
    public static Command Create()
    {
        var id = new Argument<string>("ID") { Description = "Sandbox id (CRI pod sandbox id, or the ctr container id), or the id of a container in it" };
        var command = new Argument<string[]>("CMD") { Description = "Command and arguments (default: /bin/sh)", Arity = ArgumentArity.ZeroOrMore };
        var noTty = new Option<bool>("--no-tty", "-T") { Description = "No pty in the guest, even when stdin is a terminal" };
        var json = new Option<bool>("--json")
        {
            Description = "No pty; stdin is passed on; print one JSON object (sandbox, command, exit status, stdout, stderr) once the command ends",
        };
        var root = StateRootOption.Create();
        var exec = new Command("exec", "Run a shell or command in a sandbox's guest VM (needs [agent] debug_console = true)")
        {
            id, command, noTty, json, root,
        };
        exec.SetAction(async (parse, cancellationToken) =>
        {
            bool asJson = parse.GetValue(json);
            bool terminal = !asJson && !parse.GetValue(noTty) && !Console.IsInputRedirected && !Console.IsOutputRedirected;
            return await RunAsync(SandboxStateDirectory.ResolveRoot(parse.GetValue(root)), parse.GetValue(id)!,
                parse.GetValue(command) ?? [], terminal, asJson, cancellationToken);
        });
        return exec;
    }

    private static async Task<int> RunAsync(string stateRoot, string id, string[] args, bool terminal, bool asJson, CancellationToken cancellationToken)
    {
        if (SandboxLookup.Find(stateRoot, id) is not { } state)
        {
            Console.Error.WriteLine($"sandboxctl exec: no sandbox or container '{id}' under {stateRoot} (`sandboxctl list` shows the sandboxes)");
            return 2;
        }
        if (SandboxMetadata.TryRead(state.MetadataFile)?.AgentDialer() is not { } dialer)
        {
            Console.Error.WriteLine($"sandboxctl exec: sandbox {state.SandboxId}: {state.MetadataFile} does not say where its agent listens " +
                                    "(still booting, or started by an older shim)");
            return 1;
        }
        using var agent = new AgentConnection(dialer, state.SandboxId);
        using var rawMode = terminal ? TerminalRawMode.Enter(0) : null;
        (int, int) Size() => (Console.WindowHeight, Console.WindowWidth);
        var lastSize = terminal ? Size() : (0, 0);
        (int, int)? Resized()
        {
            var now = Size();
            if (now == lastSize) return null;
            lastSize = now;
            return now;
        }
        try
        {
            if (!asJson)
            {
                return await new DebugConsoleCall(agent.Client).RunAsync(args, terminal, lastSize, Console.OpenStandardInput(),
                    Console.OpenStandardOutput(), Console.OpenStandardError(), terminal ? Resized : null, cancellationToken);
            }
            using var stdout = new MemoryStream();
            using var stderr = new MemoryStream();
            int status = await new DebugConsoleCall(agent.Client).RunAsync(args, terminal: false, (0, 0), Console.OpenStandardInput(),
                stdout, stderr, resized: null, cancellationToken);
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new ExecReport(state.SandboxId, args, status,
                System.Text.Encoding.UTF8.GetString(stdout.ToArray()), System.Text.Encoding.UTF8.GetString(stderr.ToArray())), ExecJson.Default.ExecReport));
            return status;
        }
        catch (RpcException e)
        {
            rawMode?.Dispose();
            Console.Error.WriteLine($"sandboxctl exec: sandbox {state.SandboxId}: {e.Status.Detail} ({e.StatusCode}, agent on {dialer.Description})");
            return 1;
        }
        catch (IOException e)
        {
            rawMode?.Dispose();
            Console.Error.WriteLine($"sandboxctl exec: sandbox {state.SandboxId}: {e.Message}");
            return 1;
        }
    }
}

/// <summary>What `sandboxctl exec --json` prints once the command ends (an empty command: the guest's default shell).</summary>
public sealed record ExecReport(string SandboxId, IReadOnlyList<string> Command, int ExitStatus, string Stdout, string Stderr);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(WriteIndented = true,
    PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.SnakeCaseLower)]
[System.Text.Json.Serialization.JsonSerializable(typeof(ExecReport))]
internal sealed partial class ExecJson : System.Text.Json.Serialization.JsonSerializerContext;
