<#
.SYNOPSIS
    Installs the library course kiosk on a Windows library PC: the terminal as a background
    task at start-up and Microsoft Edge in public-browsing kiosk mode at the patron's logon.

.DESCRIPTION
    Run once, elevated, on a clean PC (safe to run again: it upgrades the wheel and replaces
    the tasks). Needs Python >= 3.11 (python.org installer, "py" launcher) and Edge; nothing
    is downloaded from anywhere but the Python package index, and with -WheelHouse not even
    that.

    Why a Scheduled Task and not a service wrapper such as NSSM: it is built into every
    Windows, so there is no third-party binary to vet, carry and update. The task runs at
    start-up as NT AUTHORITY\LOCAL SERVICE (no password, no admin rights, no network
    credentials); run-terminal.ps1 restarts the server if it stops, since Task Scheduler's
    own restart only covers a failure to launch.

    The registry token is a secret: it is written to terminal.env in the instance folder,
    readable only by Administrators, SYSTEM and LOCAL SERVICE - not by the patron account.
    Leave -RegistryToken out of the command, as in the example: PowerShell then asks for it
    (a mandatory parameter), so the token is not part of any command line.

.EXAMPLE
    .\install-kiosk.ps1 -WheelPath .\library_course_kiosk-0.1.0-py3-none-any.whl `
        -RegistryUrl https://registry.example.be `
        -LibraryCode ANT-PERMEKE -Language nl -KioskUser kiosk
    # PowerShell then asks for RegistryToken: paste the token from add-terminal there.
#>
[CmdletBinding()]
param(
    # The kiosk wheel built by `pip wheel --no-deps -w dist .` (library_course_kiosk-*.whl);
    # put the checkout's constraints.txt beside it, so pip installs the versions CI tested.
    [Parameter(Mandatory)]
    [ValidateScript({ (Test-Path -LiteralPath $_ -PathType Leaf) -and $_ -like '*.whl' })]
    [string] $WheelPath,

    [Parameter(Mandatory)]
    [ValidatePattern('^https?://[^\s/]+')]
    [string] $RegistryUrl,

    # From `kiosk registry add-terminal` (shown once).
    [Parameter(Mandatory)]
    [ValidatePattern('^kt_[A-Za-z0-9_-]+$')]
    [string] $RegistryToken,

    # The branch this PC stands in, e.g. ANT-PERMEKE.
    [Parameter(Mandatory)]
    [ValidatePattern('^[A-Z]{3}(-[A-Z0-9]+)+$')]
    [string] $LibraryCode,

    # Start-screen language after an idle reset.
    [ValidateSet('nl', 'fr', 'en')]
    [string] $Language = 'nl',

    # The local, password-less account the PC logs in to for patrons; Edge starts at its logon.
    [Parameter(Mandatory)]
    [ValidateNotNullOrEmpty()]
    [string] $KioskUser,

    # Written into run-terminal.ps1 between single quotes: no quotes in the path.
    [ValidatePattern('^[A-Za-z]:\\[^''"`]*$')]
    [string] $InstallDir = 'C:\Kiosk',

    # A folder of wheels for an offline install (pip --no-index --find-links).
    [ValidateScript({ Test-Path -LiteralPath $_ -PathType Container })]
    [string] $WheelHouse,

    # python.exe to build the venv with; default: the "py" launcher, else python.exe on PATH.
    [string] $PythonExe
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$Port = 5000  # the URL Edge opens; keep it in step with run-terminal.ps1
$KioskUrl = "http://127.0.0.1:$Port/"

$principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated PowerShell (Run as administrator).'
}
if (-not (Get-LocalUser -Name $KioskUser -ErrorAction SilentlyContinue)) {
    throw "Local account '$KioskUser' does not exist: create the patron account first."
}

# --- Python and the wheel ----------------------------------------------------------------

function Resolve-Python {
    if ($PythonExe) { return @($PythonExe) }
    if (Get-Command py.exe -ErrorAction SilentlyContinue) { return @('py.exe', '-3') }
    # The Microsoft Store alias under WindowsApps is a stub that opens the Store: refuse it.
    $python = Get-Command python.exe -ErrorAction SilentlyContinue |
        Where-Object { $_.Source -notlike '*\WindowsApps\*' } | Select-Object -First 1
    if ($python) { return @($python.Source) }
    throw 'Python 3.11 or later is needed (python.org installer, with the py launcher).'
}

$venv = Join-Path $InstallDir 'venv'
$venvPython = Join-Path $venv 'Scripts\python.exe'
$kioskExe = Join-Path $venv 'Scripts\kiosk.exe'
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
# A folder made under C:\ inherits "Authenticated Users: Modify": a patron could then swap the
# code LOCAL SERVICE runs. Only administrators write here; the service reads.
# SIDs, not names, so the script works on a French or Dutch Windows too.
& icacls.exe $InstallDir /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' '*S-1-5-19:(OI)(CI)RX' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "Could not set the permissions of $InstallDir." }

if (-not (Test-Path -LiteralPath $venvPython)) {
    $python = @(Resolve-Python)
    $pyArgs = @($python | Select-Object -Skip 1)
    & $python[0] @pyArgs -c 'import sys; sys.exit(sys.version_info < (3, 11))'
    if ($LASTEXITCODE -ne 0) { throw 'Python 3.11 or later is needed.' }
    & $python[0] @pyArgs -m venv $venv
    if ($LASTEXITCODE -ne 0) { throw "Could not create the venv in $venv." }
}

$pipArgs = @('-m', 'pip', 'install', '--no-input', '--disable-pip-version-check', '--upgrade')
if ($WheelHouse) { $pipArgs += @('--no-index', '--find-links', $WheelHouse) }
# The checkout's constraints.txt, copied next to the wheel: the versions CI tested.
$wheelFile = (Resolve-Path -LiteralPath $WheelPath).Path
$constraints = Join-Path (Split-Path -Parent $wheelFile) 'constraints.txt'
if (Test-Path -LiteralPath $constraints -PathType Leaf) {
    $pipArgs += @('--constraint', $constraints)
} else {
    Write-Warning "No constraints.txt next to the wheel: pip takes the newest versions setup.cfg allows, not the ones tested."
}
& $venvPython @pipArgs $wheelFile
if ($LASTEXITCODE -ne 0) { throw 'pip could not install the kiosk wheel.' }

# --- Instance folder and configuration -----------------------------------------------------

# Flask keeps the instance folder (secret key) at <venv>\var\kiosk-instance for an installed
# package; the config sits beside it so one ACL protects both.
$instance = Join-Path $venv 'var\kiosk-instance'
New-Item -ItemType Directory -Force -Path $instance | Out-Null
# No inheritance: Administrators and SYSTEM full control, LOCAL SERVICE may write (secret key).
& icacls.exe $instance /inheritance:r /grant:r '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-18:(OI)(CI)F' '*S-1-5-19:(OI)(CI)M' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "Could not set the permissions of $instance." }

$envFile = Join-Path $instance 'terminal.env'
$logFile = Join-Path $instance 'logs\terminal.log'  # LOCAL SERVICE may write only here
@(
    '# Written by install-kiosk.ps1; read by `kiosk terminal serve --env-file` and'
    '# `kiosk doctor --env-file`. Any KIOSK_<SETTING> may be added (README, "Configuration").'
    "KIOSK_REGISTRY_URL=$RegistryUrl"
    "KIOSK_REGISTRY_TOKEN=$RegistryToken"
    "KIOSK_LIBRARY_CODE=$LibraryCode"
    "KIOSK_DEFAULT_LANGUAGE=$Language"
    "KIOSK_LOG_FILE=$logFile"
) | Set-Content -LiteralPath $envFile -Encoding ASCII

# --- The terminal: a start-up task as LOCAL SERVICE ---------------------------------------

$runner = Join-Path $InstallDir 'run-terminal.ps1'
@"
# Written by install-kiosk.ps1. Keeps the terminal running (waitress on 127.0.0.1:$Port).
while (`$true) {
    & '$kioskExe' terminal serve --env-file '$envFile' --host 127.0.0.1 --port $Port
    Start-Sleep -Seconds 10  # a bad setting or token stops the start: do not spin
}
"@ | Set-Content -LiteralPath $runner -Encoding UTF8

# For branch IT, from an elevated prompt: the same checks as after this installation.
$doctorCmd = Join-Path $InstallDir 'kiosk-doctor.cmd'
@(
    '@echo off'
    'rem Written by install-kiosk.ps1: is this kiosk fit to serve? Exit code 1 on any FAIL.'
    "`"$kioskExe`" doctor --env-file `"$envFile`" %*"
) | Set-Content -LiteralPath $doctorCmd -Encoding ASCII

$powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
$terminalTask = 'Kiosk terminal'
$action = New-ScheduledTaskAction -Execute $powershell `
    -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$runner`"" `
    -WorkingDirectory $instance
$trigger = New-ScheduledTaskTrigger -AtStartup
$taskUser = New-ScheduledTaskPrincipal -UserId 'NT AUTHORITY\LOCAL SERVICE' -LogonType ServiceAccount -RunLevel Limited
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -RestartCount 999 -RestartInterval (New-TimeSpan -Minutes 1) -StartWhenAvailable `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName $terminalTask -Action $action -Trigger $trigger `
    -Principal $taskUser -Settings $settings -Force | Out-Null
Stop-ScheduledTask -TaskName $terminalTask -ErrorAction SilentlyContinue
Start-ScheduledTask -TaskName $terminalTask

# --- Edge: public-browsing kiosk at the patron account's logon ---------------------------

$edge = @(
    (Join-Path ${env:ProgramFiles(x86)} 'Microsoft\Edge\Application\msedge.exe'),
    (Join-Path $env:ProgramFiles 'Microsoft\Edge\Application\msedge.exe')
) | Where-Object { Test-Path -LiteralPath $_ } | Select-Object -First 1
if (-not $edge) { throw 'Microsoft Edge is not installed.' }

# Machine policies, the Edge side of deploy/linux/policies/kiosk.json.
$policyKey = 'HKLM:\SOFTWARE\Policies\Microsoft\Edge'
New-Item -Path $policyKey -Force | Out-Null
$dwords = [ordered]@{
    TranslateEnabled = 0; PasswordManagerEnabled = 0; AutofillAddressEnabled = 0
    AutofillCreditCardEnabled = 0; BrowserSignin = 0; SyncDisabled = 1
    DeveloperToolsAvailability = 2; DownloadRestrictions = 3; PrintingEnabled = 1
    HideFirstRunExperience = 1
}
foreach ($name in $dwords.Keys) {
    New-ItemProperty -Path $policyKey -Name $name -Value $dwords[$name] -PropertyType DWord -Force | Out-Null
}
foreach ($list in @{ URLBlocklist = @('*'); URLAllowlist = @("http://127.0.0.1:$Port", 'edge://print') }.GetEnumerator()) {
    $key = Join-Path $policyKey $list.Key
    Remove-Item -Path $key -Recurse -Force -ErrorAction SilentlyContinue
    New-Item -Path $key -Force | Out-Null
    for ($i = 0; $i -lt $list.Value.Count; $i++) {
        New-ItemProperty -Path $key -Name ($i + 1) -Value $list.Value[$i] -PropertyType String -Force | Out-Null
    }
}

# public-browsing: InPrivate, wiped when closed or after the idle timeout (a backstop for the
# kiosk's own 90-second reset). For a locked shell as well, use Assigned Access (Settings >
# Accounts > Other users > Set up a kiosk) with the same URL; this task then is not needed.
$browserTask = 'Kiosk browser'
$edgeArgs = "--kiosk $KioskUrl --edge-kiosk-type=public-browsing --kiosk-idle-timeout-minutes=5 --no-first-run"
# Edge closed or crashed leaves the patron at the desktop: start it again within seconds.
$browserRunner = Join-Path $InstallDir 'run-browser.ps1'
@"
# Written by install-kiosk.ps1. Keeps Edge open on the kiosk at the patron account's logon.
while (`$true) {
    if (-not (Get-Process -Name msedge -ErrorAction SilentlyContinue)) {
        Start-Process -FilePath '$edge' -ArgumentList '$edgeArgs'
    }
    Start-Sleep -Seconds 3
}
"@ | Set-Content -LiteralPath $browserRunner -Encoding UTF8
$action = New-ScheduledTaskAction -Execute $powershell `
    -Argument "-NoProfile -NonInteractive -WindowStyle Hidden -ExecutionPolicy Bypass -File `"$browserRunner`""
$trigger = New-ScheduledTaskTrigger -AtLogOn -User $KioskUser
$taskUser = New-ScheduledTaskPrincipal -UserId $KioskUser -LogonType Interactive -RunLevel Limited
$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew
Register-ScheduledTask -TaskName $browserTask -Action $action -Trigger $trigger `
    -Principal $taskUser -Settings $settings -Force | Out-Null

# --- Check it: the same table branch IT gets from kiosk-doctor.cmd later --------------------

Start-Sleep -Seconds 5  # let the terminal task start (doctor does not need it, the logs do)
& $kioskExe doctor --env-file $envFile
$doctorFailed = $LASTEXITCODE -ne 0

Write-Host "Kiosk installed in $InstallDir; terminal on $KioskUrl (task '$terminalTask')."
Write-Host "Edge opens it in kiosk mode when '$KioskUser' logs on (task '$browserTask')."
Write-Host "Set automatic logon for '$KioskUser' (Sysinternals Autologon or your MDM) and restart."
Write-Host "Check it any time with $doctorCmd; the terminal's log is $logFile."
if ($doctorFailed) {
    Write-Warning 'kiosk doctor found a problem (FAIL above): fix terminal.env and run kiosk-doctor.cmd.'
    exit 1
}
