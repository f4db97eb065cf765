using Sandbox.Shim.Cli;
using Sandbox.Shim.Daemon;
using Sandbox.Shim.Delete;
using Sandbox.Shim.Start;

namespace Sandbox.Shim;

/// <summary>containerd-shim-sandbox-v2: `start`, `delete`, or (no action) the daemon.</summary>
public static class Program
{
    public const string VersionText = "containerd-shim-sandbox-v2 0.1.0 (containerd shim API v2, ttrpc)";

    public static async Task<int> Main(string[] args)
    {
        ShimFlags flags;
        try
        {
            flags = ShimFlagParser.Parse(args);
        }
        catch (ShimUsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            return 2;
        }

        if (flags.Version)
        {
            Console.Out.WriteLine(VersionText);
            return 0;
        }

        // `start`: stdout and stderr are one pipe that containerd reads as the address, so it logs nothing (a failure
        // is reported below and becomes containerd's error text). `delete`: containerd logs any stderr as warnings.
        var log = new ShimLog(flags.Namespace, flags.Id, flags.Action switch
        {
            "start" => ShimLogLevel.Silent,
            "delete" => ShimLogLevel.Warning,
            _ => flags.Debug ? ShimLogLevel.Debug : ShimLogLevel.Info,
        });
        try
        {
            switch (flags.Action)
            {
                case "start":
                    return await StartCommand.RunAsync(flags, await ReadStdinAsync(), Console.Out, log);
                case "delete":
                    await using (var stdout = Console.OpenStandardOutput())
                        return await DeleteCommand.RunAsync(flags, stdout, log);
                default:
                    return await ShimDaemon.RunAsync(flags, log);
            }
        }
        catch (ShimUsageException e)
        {
            await Console.Error.WriteLineAsync(e.Message);
            return 2;
        }
        catch (Exception e)
        {
            // containerd shows this text (with the exit status) as the reason `start` or `delete` failed
            await Console.Error.WriteLineAsync($"containerd-shim-sandbox-v2 {flags.Action}: {e.Message}");
            return 1;
        }
    }

    private static async Task<byte[]> ReadStdinAsync()
    {
        try
        {
            await using var stdin = Console.OpenStandardInput();
            using var buffer = new MemoryStream();
            await stdin.CopyToAsync(buffer);
            return buffer.ToArray();
        }
        catch (IOException)
        {
            return Array.Empty<byte>(); // no stdin at all: no options
        }
    }
}
